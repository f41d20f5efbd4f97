//! `sealpost backup DIR` and `sealpost restore DIR`: the database, the sealed
//! blobs and spool files, and — apart, with a warning — the keys that open them.
//! `SQLite` is copied with `VACUUM INTO` (consistent while a server runs);
//! `PostgreSQL` with `pg_dump` / `pg_restore`. Layout of DIR (docs/operations.md):
//! `manifest.json`, `database.sqlite` or `database.pgdump`, `blobs/`, `spool/`,
//! and `keys/` unless `--keys-to` put them elsewhere.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use sealpost::app;
use sealpost::config::Config;
use store::SystemClock;
use store::db::Dialect;
use store::maintenance::backup::{postgres_is_empty, restore_blobs, sqlite_path};

/// The backup layout's version, in `manifest.json`.
const FORMAT: u32 = 1;

#[derive(serde::Serialize, serde::Deserialize)]
struct Manifest {
    format: u32,
    sealpost_version: String,
    created_at: i64,
    /// `sqlite` or `postgres`.
    database: String,
    blobs: u64,
    spool_files: u64,
    /// The key-encryption keys the backup's data keys are wrapped by.
    keks: Vec<String>,
    /// Where the keys were written (for the person restoring; never read back).
    keys_written_to: String,
}

/// `sealpost backup DIR [--keys-to PATH]`
pub(crate) async fn backup(config: &Config, dir: &Path, keys_to: Option<&Path>) -> anyhow::Result<()> {
    ensure_empty(dir, "backup folder")?;
    let keys_dir = keys_to.map_or_else(|| dir.join("keys"), Path::to_path_buf);
    if keys_to.is_some() {
        ensure_empty(&keys_dir, "keys folder")?;
    }
    let store = app::open_store(config, Arc::new(SystemClock)).await?;
    std::fs::create_dir_all(dir)?;
    let database = match store.maintenance().dialect() {
        Dialect::Sqlite => {
            store
                .maintenance()
                .snapshot_sqlite(&dir.join("database.sqlite"))
                .await?;
            "sqlite"
        }
        Dialect::Postgres => {
            run(Command::new("pg_dump")
                .arg("--format=custom")
                .arg("--no-owner")
                .arg("--file")
                .arg(dir.join("database.pgdump"))
                .arg(format!("--dbname={}", config.database_url())))
            .context("pg_dump (install the PostgreSQL client of the server's version)")?;
            "postgres"
        }
    };
    println!("  database: copied ({database})");
    let blobs = store.maintenance().copy_blobs_to(&dir.join("blobs")).await?;
    println!("  blobs:    {} files, {} bytes (sealed)", blobs.files, blobs.bytes);
    let spool = store.maintenance().copy_spool_to(&dir.join("spool"))?;
    println!("  spool:    {} files (sealed)", spool.files);
    copy_private_dir(&store.maintenance().keyring_dir(), &keys_dir)?;
    backup_dkim(config, &keys_dir)?;
    let keks = store
        .maintenance()
        .kek_usage()
        .await?
        .into_iter()
        .map(|k| k.id)
        .collect();
    let manifest = Manifest {
        format: FORMAT,
        sealpost_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: store.now(),
        database: database.to_owned(),
        blobs: blobs.files,
        spool_files: spool.files,
        keks,
        keys_written_to: keys_dir.display().to_string(),
    };
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec_pretty(&manifest)?)?;
    println!("Backup written to {}.", dir.display());
    eprintln!();
    eprintln!(
        "WARNING: {} holds the keys that open every message in this backup.",
        keys_dir.display()
    );
    eprintln!("  Keep them apart from the data: on other storage (an offline medium, a vault),");
    eprintln!("  never beside the backup or on the same backup target. Whoever has both can read");
    eprintln!("  every message; whoever loses the keys cannot restore anything.");
    Ok(())
}

/// `sealpost restore DIR [--keys-from PATH] [--force]`
pub(crate) async fn restore(config: &Config, dir: &Path, keys_from: Option<&Path>, force: bool) -> anyhow::Result<()> {
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(dir.join("manifest.json"))
            .with_context(|| format!("{} is not a Sealpost backup (no manifest.json)", dir.display()))?,
    )
    .context("manifest.json is damaged")?;
    if manifest.format != FORMAT {
        bail!(
            "this backup has format {}; this sealpost reads format {FORMAT}",
            manifest.format
        );
    }
    let keys = keys_from.map_or_else(|| dir.join("keys"), Path::to_path_buf);
    if !keys.join("active").is_file() || !keys.join(store::crypto::AUDIT_KEY_FILE).is_file() {
        bail!(
            "no keys in {}: pass --keys-from with the folder `sealpost backup` wrote them to",
            keys.display()
        );
    }
    let url = config.database_url();
    let dialect = Dialect::of(&url).context("the configured database url is not sqlite: or postgres://")?;
    match (dialect, manifest.database.as_str()) {
        (Dialect::Sqlite, "sqlite") | (Dialect::Postgres, "postgres") => {}
        (_, other) => bail!("this backup holds a {other} database, but the configuration points at another kind"),
    }
    if !force {
        ensure_empty(&config.data_dir, "data folder")?;
    }
    match dialect {
        Dialect::Sqlite => {
            let target = sqlite_path(&url).context("the configured SQLite database has no file")?;
            if target.exists() && !force {
                bail!(
                    "{} exists: restore onto a fresh database (or pass --force)",
                    target.display()
                );
            }
            if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            for stale in ["-wal", "-shm", "-journal"] {
                let _ = std::fs::remove_file(format!("{}{stale}", target.display()));
            }
            let tmp = target.with_extension("restoring");
            std::fs::copy(dir.join("database.sqlite"), &tmp)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &target)?;
        }
        Dialect::Postgres => {
            if !force && !postgres_is_empty(&url).await? {
                bail!("the configured PostgreSQL database is not empty: restore onto a fresh one (or pass --force)");
            }
            let mut command = Command::new("pg_restore");
            command.arg("--no-owner").arg("--exit-on-error");
            if force {
                command.arg("--clean").arg("--if-exists");
            }
            run(command.arg(format!("--dbname={url}")).arg(dir.join("database.pgdump")))
                .context("pg_restore (restore onto an empty database, or pass --force)")?;
        }
    }
    println!("  database: restored");
    copy_private_dir(&keys, &config.data_dir.join("keys"))?;
    restore_dkim(config, &keys)?;
    println!("  keys:     restored");
    let blobs = restore_blobs(&dir.join("blobs"), &config.blobs_url()).await?;
    println!("  blobs:    {} files, {} bytes", blobs.files, blobs.bytes);
    let mut spool_files = 0;
    for name in ["in", "out"] {
        let Ok(entries) = std::fs::read_dir(dir.join("spool").join(name)) else {
            continue;
        };
        let to = config.data_dir.join("spool").join(name);
        std::fs::create_dir_all(&to)?;
        for entry in entries.flatten() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
            spool_files += 1;
        }
    }
    println!("  spool:    {spool_files} files");
    let store = app::open_store(config, Arc::new(SystemClock)).await?;
    let missing: Vec<String> = store
        .maintenance()
        .kek_usage()
        .await?
        .into_iter()
        .filter(|k| !k.on_disk && k.data_keys > 0)
        .map(|k| k.id)
        .collect();
    if !missing.is_empty() {
        bail!(
            "restored, but key-encryption key(s) {} are not among the keys given: those messages cannot be opened",
            missing.join(", ")
        );
    }
    match store.audit_log().verify_audit().await? {
        Ok(entries) => println!("Restored. The audit log verifies ({entries} entries)."),
        Err(id) => bail!("restored, but the audit log does not verify (entry {id}): are these the backup's own keys?"),
    }
    Ok(())
}

/// Refuses a folder that exists with something in it.
fn ensure_empty(dir: &Path, what: &str) -> anyhow::Result<()> {
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        bail!("the {what} {} is not empty", dir.display());
    }
    Ok(())
}

/// Copies the files of `from` into `to` (made 0700), each 0600.
/// The DKIM keys go beside the keyring: the default domain's as `dkim.key`
/// and `dkim-ed25519.key`, each `[[dkim.domains]]` entry's as
/// `dkim-domains/<domain>/rsa.key` and `ed25519.key`.
fn backup_dkim(config: &Config, keys_dir: &Path) -> anyhow::Result<()> {
    let default = config.dkim.default_keys(&config.data_dir);
    let mut copies = vec![
        (default.key, keys_dir.join("dkim.key")),
        (default.ed25519_key, keys_dir.join("dkim-ed25519.key")),
    ];
    for keys in config.dkim.domain_keys(&config.data_dir) {
        let dir = keys_dir.join(DKIM_DOMAINS).join(&keys.domain);
        copies.push((keys.key, dir.join("rsa.key")));
        copies.push((keys.ed25519_key, dir.join("ed25519.key")));
    }
    for (from, to) in copies {
        if from.exists() {
            copy_private(&from, &to)?;
        }
    }
    Ok(())
}

/// The folder of the other signing domains' keys in a backup's keys.
const DKIM_DOMAINS: &str = "dkim-domains";

/// Puts each DKIM key back where the configuration looks for it; a domain
/// the configuration no longer lists gets the default place
/// (`<data_dir>/dkim/<domain>/`), and is named so it can be listed again.
fn restore_dkim(config: &Config, keys: &Path) -> anyhow::Result<()> {
    // The default domain's keys were copied into keys/ with the keyring.
    std::fs::remove_file(config.data_dir.join("keys").join("dkim.key")).ok();
    std::fs::remove_file(config.data_dir.join("keys").join("dkim-ed25519.key")).ok();
    let default = config.dkim.default_keys(&config.data_dir);
    let mut copies = vec![
        (keys.join("dkim.key"), default.key),
        (keys.join("dkim-ed25519.key"), default.ed25519_key),
    ];
    if let Ok(entries) = std::fs::read_dir(keys.join(DKIM_DOMAINS)) {
        for entry in entries.flatten() {
            let domain = entry.file_name().to_string_lossy().into_owned();
            let labels_ok = domain
                .split('.')
                .all(|label| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
            if !labels_ok || !domain.contains('.') {
                eprintln!("  dkim:     {domain:?} in the backup's keys is not a domain: skipped");
                continue;
            }
            let to = config.dkim.keys_for(&domain, &config.data_dir);
            if !config.dkim.signs_for(&domain) {
                println!(
                    "  dkim:     keys of {domain} restored to {}; add a [[dkim.domains]] entry to sign with them",
                    to.key.parent().unwrap_or(&config.data_dir).display()
                );
            }
            copies.push((entry.path().join("rsa.key"), to.key));
            copies.push((entry.path().join("ed25519.key"), to.ed25519_key));
        }
    }
    for (from, to) in copies {
        if from.is_file() {
            copy_private(&from, &to)?;
        }
    }
    Ok(())
}

fn copy_private_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    #[cfg(unix)]
    std::fs::set_permissions(to, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let path = entry?.path();
        if path.is_file() && path.extension().is_none_or(|e| e != "tmp") {
            copy_private(&path, &to.join(path.file_name().unwrap_or_default()))?;
        }
    }
    Ok(())
}

fn copy_private(from: &Path, to: &PathBuf) -> anyhow::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(from, to).with_context(|| format!("cannot copy {}", from.display()))?;
    #[cfg(unix)]
    std::fs::set_permissions(to, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    std::fs::File::open(to)?.sync_all()?;
    Ok(())
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command.output()?;
    if !output.status.success() {
        bail!("{}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}
