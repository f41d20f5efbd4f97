//! `sealpost drop --watch DIR --to ADDRESS`: imaging software exports X-rays
//! to a folder; each file that appears there is sent as its own drop once it
//! stopped growing (its size and modification time unchanged for `--settle`
//! seconds), then moved to `DIR/sent/`, or to `DIR/failed/` beside a
//! `NAME.reason.txt` saying why. Hidden files and names ending in `.part`,
//! `.tmp`, `.partial` or `.crdownload` are left alone (still being written).
//!
//! `DIR/.sealpost-drop-state.json` records each file's progress (its upload,
//! "sending", "sent"), written atomically before each step, so a restart goes
//! on with an upload instead of starting over, and never sends a file twice:
//! a file recorded as "sent" is only moved; one recorded as "sending" is sent
//! again with the same upload, which the server consumed if the first send
//! got through (then it answers "no such upload", and the file counts as sent).

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::drop_api::{Api, DropError};
use super::drop_files::{DropArgs, Failure, LocalFile, Screen, local_file, upload_all};

const STATE_FILE: &str = ".sealpost-drop-state.json";
const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Stage {
    Uploading,
    Sending,
    Sent,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    size: u64,
    stage: Stage,
    /// The upload's location on the portal, once made.
    upload: Option<String>,
    /// The message, once sent.
    message: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    files: BTreeMap<String, Entry>,
}

/// The state file of `dir`, kept on disk after every change.
struct Ledger {
    path: PathBuf,
    state: State,
}

impl Ledger {
    fn open(dir: &Path) -> Result<Self, Failure> {
        let path = dir.join(STATE_FILE);
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Failure::usage(format!(
                    "{} is damaged ({e}); move it away only if no file in the folder was half-sent.",
                    path.display()
                ))
            })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(error) => return Err(Failure::usage(format!("Can't read {}: {error}", path.display()))),
        };
        Ok(Self { path, state })
    }

    /// Writes the state: a new file, synced, then renamed over the old one.
    fn save(&self) -> Result<(), Failure> {
        use std::io::Write as _;
        let tmp = self.path.with_extension("json.new");
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&serde_json::to_vec_pretty(&self.state).unwrap_or_default())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Some(parent) = self.path.parent() {
                std::fs::File::open(parent)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| Failure::usage(format!("Can't write {}: {e}", self.path.display())))
    }

    fn set(&mut self, name: &str, entry: Entry) -> Result<(), Failure> {
        self.state.files.insert(name.to_owned(), entry);
        self.save()
    }

    fn forget(&mut self, name: &str) -> Result<(), Failure> {
        self.state.files.remove(name);
        self.save()
    }
}

/// Whether a name is one the watcher sends.
fn wanted(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !name.starts_with('.')
        && ![".part", ".tmp", ".partial", ".crdownload", ".reason.txt"]
            .iter()
            .any(|suffix| lower.ends_with(suffix))
}

/// Moves `name` from `dir` into `dir/into/`, under a free name.
fn move_into(dir: &Path, into: &str, name: &str) -> std::io::Result<PathBuf> {
    let target_dir = dir.join(into);
    std::fs::create_dir_all(&target_dir)?;
    let mut target = target_dir.join(name);
    let mut n = 1;
    while target.exists() {
        target = target_dir.join(format!("{name}.{n}"));
        n += 1;
    }
    std::fs::rename(dir.join(name), &target)?;
    Ok(target)
}

/// Watches `dir` until stopped (or `--max-files` files were handled).
pub async fn watch(api: &Api, args: &DropArgs, dir: &Path) -> Result<(), Failure> {
    if !dir.is_dir() {
        return Err(Failure::usage(format!("{} is not a folder.", dir.display())));
    }
    api.check_credentials().await?;
    let screen = Screen::new();
    let mut ledger = Ledger::open(dir)?;
    let mut handled = 0usize;
    screen.say(&format!(
        "Watching {} for files to send to {} (Ctrl-C stops).",
        dir.display(),
        args.to
    ));
    // What a previous run left half-done.
    let pending: Vec<(String, Entry)> = ledger
        .state
        .files
        .iter()
        .filter(|(_, e)| e.stage != Stage::Uploading)
        .map(|(n, e)| (n.clone(), e.clone()))
        .collect();
    for (name, entry) in pending {
        handled += finish_send(api, args, &screen, dir, &mut ledger, &name, entry).await?;
    }
    let settle = Duration::from_secs(args.settle.max(1));
    let mut seen: HashMap<String, (u64, Option<std::time::SystemTime>, Instant)> = HashMap::new();
    loop {
        if args.max_files.is_some_and(|max| handled >= max) {
            return Ok(());
        }
        let mut present = Vec::new();
        let entries =
            std::fs::read_dir(dir).map_err(|e| Failure::usage(format!("Can't list {}: {e}", dir.display())))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(metadata) = entry.metadata() else { continue };
            if !metadata.is_file() || !wanted(&name) {
                continue;
            }
            present.push(name.clone());
            let now = (metadata.len(), metadata.modified().ok());
            let stable_since = match seen.get(&name) {
                Some((size, modified, since)) if (*size, *modified) == now => *since,
                _ => {
                    seen.insert(name.clone(), (now.0, now.1, Instant::now()));
                    continue;
                }
            };
            if stable_since.elapsed() < settle {
                continue;
            }
            seen.remove(&name);
            handled += send_one(api, args, &screen, dir, &mut ledger, &name).await?;
            if args.max_files.is_some_and(|max| handled >= max) {
                return Ok(());
            }
        }
        seen.retain(|name, _| present.contains(name));
        tokio::time::sleep(POLL).await;
    }
}

/// Sends one settled file as its own drop; returns 1 when it was handled
/// (sent or failed for good), 0 when it stays for a later try.
async fn send_one(
    api: &Api,
    args: &DropArgs,
    screen: &Screen,
    dir: &Path,
    ledger: &mut Ledger,
    name: &str,
) -> Result<usize, Failure> {
    let file: LocalFile = match local_file(&dir.join(name)) {
        Ok(file) => file,
        Err(failure) => return fail(screen, dir, ledger, name, &failure.message),
    };
    let previous = ledger
        .state
        .files
        .get(name)
        .filter(|e| e.stage == Stage::Uploading && e.size == file.length)
        .and_then(|e| e.upload.clone());
    let size = file.length;
    let mut record = |_: usize, location: &str| {
        let entry = Entry {
            size,
            stage: Stage::Uploading,
            upload: Some(location.to_owned()),
            message: None,
        };
        if let Err(failure) = ledger.set(name, entry) {
            screen.say(&failure.message);
        }
    };
    let uploaded = upload_all(api, screen, std::slice::from_ref(&file), &mut record, &[previous]).await;
    let location = match uploaded {
        Ok(mut locations) => locations.remove(0),
        Err(error) => return handle_error(screen, dir, ledger, name, error),
    };
    let entry = Entry {
        size,
        stage: Stage::Sending,
        upload: Some(location),
        message: None,
    };
    ledger.set(name, entry.clone())?;
    finish_send(api, args, screen, dir, ledger, name, entry).await
}

/// Sends a file whose upload is finished (stage "sending"), or only moves one
/// already sent; then files it under `sent/`.
async fn finish_send(
    api: &Api,
    args: &DropArgs,
    screen: &Screen,
    dir: &Path,
    ledger: &mut Ledger,
    name: &str,
    mut entry: Entry,
) -> Result<usize, Failure> {
    if entry.stage == Stage::Sending {
        let locations: Vec<String> = entry.upload.iter().cloned().collect();
        let on_retry = |why: &str| screen.say(&format!("{name}: {why}"));
        match api
            .drop_files(&args.to, args.role.as_deref(), &args.note, &locations, &on_retry)
            .await
        {
            Ok(dropped) => entry.message = Some(dropped.message),
            // The server consumes an upload when it sends it: a "sending"
            // file whose upload is gone was sent before a restart.
            Err(DropError::UploadGone(_)) => {
                screen.say(&format!("{name}: already sent before the restart"));
            }
            Err(error) => {
                if matches!(error, DropError::Refused(_)) {
                    api.discard(&locations).await;
                }
                return handle_error(screen, dir, ledger, name, error);
            }
        }
        entry.stage = Stage::Sent;
        ledger.set(name, entry.clone())?;
    }
    if dir.join(name).exists() {
        move_into(dir, "sent", name)
            .map_err(|e| Failure::usage(format!("Sent {name}, but could not move it to sent/: {e}")))?;
    }
    ledger.forget(name)?;
    match entry.message {
        Some(message) => println!("Sent {name} securely to {} (message {message}).", args.to),
        None => println!("Sent {name} securely to {}.", args.to),
    }
    Ok(1)
}

/// What an error means for a watched file: a refusal fails it for good; a
/// portal that stays away leaves it for a later try; a refused password
/// stops the watcher.
fn handle_error(
    screen: &Screen,
    dir: &Path,
    ledger: &mut Ledger,
    name: &str,
    error: DropError,
) -> Result<usize, Failure> {
    match error {
        DropError::Auth(_) => Err(error.into()),
        DropError::Unreachable(why) => {
            screen.say(&format!("{name}: {why} Will try again."));
            Ok(0)
        }
        DropError::Refused(why) | DropError::UploadGone(why) | DropError::Local(why) => {
            fail(screen, dir, ledger, name, &why)
        }
    }
}

/// Moves `name` to `failed/` beside a `NAME.reason.txt`.
fn fail(screen: &Screen, dir: &Path, ledger: &mut Ledger, name: &str, why: &str) -> Result<usize, Failure> {
    let moved = move_into(dir, "failed", name)
        .map_err(|e| Failure::usage(format!("{name} failed ({why}), and could not be moved to failed/: {e}")))?;
    let reason = moved.with_file_name(format!(
        "{}.reason.txt",
        moved.file_name().unwrap_or_default().to_string_lossy()
    ));
    std::fs::write(&reason, format!("{why}\n"))
        .map_err(|e| Failure::usage(format!("Can't write {}: {e}", reason.display())))?;
    ledger.forget(name)?;
    screen.say(&format!("{name}: not sent: {why} (moved to failed/)"));
    Ok(1)
}
