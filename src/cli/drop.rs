//! `sealpost drop`: Secure Drop from a front-desk PC. Sends files to one
//! recipient through the portal's HTTPS API (`drop_api.rs`) with an app
//! password, a progress bar per file and one overall, resuming an upload
//! after a dropped connection; or, with `--watch DIR`, sends each finished
//! file that appears in a folder (`drop_watch.rs`). The credentials come from
//! `SEALPOST_EMAIL` + `SEALPOST_APP_PASSWORD` or a file only its owner can
//! read (`--credentials`), never from the command line. See docs/secure-drop.md.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use super::drop_api::{Api, DropError};
pub use super::drop_files::DropArgs;
use super::drop_files::{EXIT_OK, Failure, Screen, local_file, upload_all};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    email: String,
    app_password: String,
}

/// The email and app password: from `--credentials FILE` (refused unless only
/// its owner may read it), else from the environment.
fn credentials(args: &DropArgs) -> Result<(String, String), Failure> {
    if let Some(path) = &args.credentials {
        return read_credentials(path);
    }
    match (std::env::var("SEALPOST_EMAIL"), std::env::var("SEALPOST_APP_PASSWORD")) {
        (Ok(email), Ok(password)) if !email.trim().is_empty() && !password.is_empty() => {
            Ok((email.trim().to_owned(), password))
        }
        _ => Err(Failure::usage(
            "No credentials: set SEALPOST_EMAIL and SEALPOST_APP_PASSWORD, or pass --credentials FILE \
             (a file only you can read, with email = \"…\" and app_password = \"…\").",
        )),
    }
}

fn read_credentials(path: &Path) -> Result<(String, String), Failure> {
    use std::os::unix::fs::PermissionsExt as _;
    let shown = path.display();
    let metadata = std::fs::metadata(path).map_err(|e| Failure::usage(format!("Can't read {shown}: {e}")))?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Failure::usage(format!(
            "{shown} can be read by others (mode {mode:o}); refusing to use it. Run: chmod 600 {shown}"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| Failure::usage(format!("Can't read {shown}: {e}")))?;
    let parsed: CredentialsFile = toml::from_str(&text).map_err(|e| {
        Failure::usage(format!(
            "{shown} is not a credentials file (email = \"…\", app_password = \"…\"): {}",
            e.message()
        ))
    })?;
    Ok((parsed.email.trim().to_owned(), parsed.app_password))
}

/// The API client the arguments describe.
fn api(args: &DropArgs) -> Result<Api, Failure> {
    let Some(portal) = args.portal.as_deref() else {
        return Err(Failure::usage(
            "Say where the portal is: --portal https://… (or SEALPOST_DROP_PORTAL).",
        ));
    };
    let (email, password) = credentials(args)?;
    let ca = match &args.ca_cert {
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|e| Failure::usage(format!("Can't read the CA certificate {}: {e}", path.display())))?,
        ),
        None => None,
    };
    let mut api = Api::new(portal, &email, &password, ca.as_deref())?;
    api.retry_for = Duration::from_secs(args.retry_for);
    api.chunk = args.chunk_bytes.clamp(16 * 1024, 64 * 1024 * 1024);
    Ok(api)
}

/// Runs `sealpost drop` and returns its exit code.
pub fn main(args: &DropArgs) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: could not start: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let api = api(args)?;
        match &args.watch {
            Some(dir) => super::drop_watch::watch(&api, args, dir).await,
            None => send_files(&api, args).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// `sealpost drop FILE… --to ADDRESS`: one drop with every file.
async fn send_files(api: &Api, args: &DropArgs) -> Result<(), Failure> {
    let files = args
        .files
        .iter()
        .map(|p| local_file(p))
        .collect::<Result<Vec<_>, _>>()?;
    api.check_credentials().await?;
    let screen = Screen::new();
    let locations = upload_all(api, &screen, &files, &mut |_, _| {}, &[]).await?;
    let retried = std::sync::atomic::AtomicBool::new(false);
    let on_retry = |why: &str| {
        retried.store(true, std::sync::atomic::Ordering::Relaxed);
        screen.say(&format!("sending: {why}"));
    };
    let dropped = match api
        .drop_files(&args.to, args.role.as_deref(), &args.note, &locations, &on_retry)
        .await
    {
        Ok(dropped) => dropped,
        // The portal consumes the uploads it sends: gone after a retry means
        // the first try got through and only its answer was lost.
        Err(DropError::UploadGone(_)) if retried.load(std::sync::atomic::Ordering::Relaxed) => {
            println!(
                "Sent {} file(s) securely to {} (the portal's answer was lost on the way).",
                files.len(),
                args.to
            );
            return Ok(());
        }
        Err(error) => {
            // Nothing was sent: the uploads would only wait for the sweeper.
            if matches!(error, DropError::Refused(_)) {
                api.discard(&locations).await;
            }
            return Err(error.into());
        }
    };
    println!(
        "Sent {} file(s) securely to {} (message {}, {}).",
        files.len(),
        args.to,
        dropped.message,
        dropped.url
    );
    Ok(())
}
