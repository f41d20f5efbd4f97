//! Backups: the pieces `sealpost backup` copies and `sealpost restore` puts
//! back. Everything copied is ciphertext (sealed blobs, sealed spool files, a
//! database whose secure columns are sealed) except the keyring, which the CLI
//! keeps apart. On `SQLite` the database copy is `VACUUM INTO`: one consistent
//! snapshot, taken while a server keeps running. Blobs and spool files are
//! copied after the snapshot, so every blob the snapshot names is there (blobs
//! are written before the row that names them and never rewritten); one deleted
//! in between is skipped, as its message is gone.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use tokio::io::AsyncWriteExt;

use crate::blobs::Blobs;
use crate::{Error, Maintenance, Result};

/// What was copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    pub files: u64,
    pub bytes: u64,
}

impl Maintenance<'_> {
    /// Whether the database is `SQLite` (backed up here) or `PostgreSQL` (backed up
    /// with its own tools).
    pub fn dialect(&self) -> crate::db::Dialect {
        self.dialect
    }

    /// The keyring folder: KEKs, `active`, the audit key.
    pub fn keyring_dir(&self) -> PathBuf {
        self.data_dir.join("keys")
    }

    /// A consistent copy of the `SQLite` database at `dest` (which must not exist).
    pub async fn snapshot_sqlite(&self, dest: &Path) -> Result<()> {
        if self.dialect != crate::db::Dialect::Sqlite {
            return Err(Error::invalid("the database is not SQLite: back it up with pg_dump"));
        }
        sqlx::query("VACUUM INTO $1")
            .bind(dest.to_string_lossy().into_owned())
            .execute(&self.db)
            .await?;
        std::fs::File::open(dest)?.sync_all()?;
        Ok(())
    }

    /// Copies every sealed blob, as it is, to a file under `dest`.
    pub async fn copy_blobs_to(&self, dest: &Path) -> Result<Copied> {
        let objects = self.blobs.objects();
        let mut listing = objects.list(None);
        let mut copied = Copied::default();
        while let Some(meta) = listing.next().await {
            let location = meta?.location;
            let mut stream = match objects.get(&location).await {
                Ok(got) => got.into_stream(),
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let path = dest.join(location.as_ref());
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            let mut file = tokio::fs::File::create(&path).await?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                copied.bytes += chunk.len() as u64;
                file.write_all(&chunk).await?;
            }
            file.sync_all().await?;
            copied.files += 1;
        }
        Ok(copied)
    }

    /// Copies the spool's complete files (sealed messages received, not yet
    /// sealed into the store or delivered) to `dest/in` and `dest/out`. Only
    /// reads: the server may be using the spool.
    pub fn copy_spool_to(&self, dest: &Path) -> Result<Copied> {
        let mut copied = Copied::default();
        for (from, name) in [(self.spool_in(), "in"), (self.spool_out(), "out")] {
            let Ok(entries) = std::fs::read_dir(&from) else {
                continue;
            };
            let to = dest.join(name);
            std::fs::create_dir_all(&to)?;
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "tmp") || !path.is_file() {
                    continue;
                }
                match std::fs::copy(&path, to.join(entry.file_name())) {
                    Ok(bytes) => {
                        copied.files += 1;
                        copied.bytes += bytes;
                    }
                    // Sealed into the store (or delivered) since the listing.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(copied)
    }
}

/// Puts every file under `src` into the blob store at `blobs_url`, named by its
/// path below `src`.
pub async fn restore_blobs(src: &Path, blobs_url: &str) -> Result<Copied> {
    let blobs = Blobs::connect(blobs_url)?;
    let mut copied = Copied::default();
    let mut pending = vec![src.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let key = path
                .strip_prefix(src)
                .map_err(|_| Error::invalid("a blob outside the backup"))?
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let mut writer = blobs.create_raw(&key).await?;
            let mut chunks = crate::sealed_stream::file_stream(&path).await?;
            while let Some(chunk) = chunks.next().await {
                let chunk: Bytes = chunk?;
                copied.bytes += chunk.len() as u64;
                writer.put(chunk).await?;
            }
            writer.finish().await?;
            copied.files += 1;
        }
    }
    Ok(copied)
}

/// Whether a `PostgreSQL` database has no table yet (a restore goes only there).
pub async fn postgres_is_empty(url: &str) -> Result<bool> {
    let (pool, _) = crate::db::connect(url).await?;
    let row = sqlx::query("SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = 'public'")
        .fetch_one(&pool)
        .await?;
    let tables: i64 = sqlx::Row::try_get(&row, "n")?;
    pool.close().await;
    Ok(tables == 0)
}

/// The file of a `sqlite:` database URL (none for `:memory:`).
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?.trim_start_matches("//");
    let path = rest.split_once('?').map_or(rest, |(path, _)| path);
    (path != ":memory:" && !path.is_empty()).then(|| PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::sqlite_path;

    #[test]
    fn finds_the_sqlite_file() {
        assert_eq!(
            sqlite_path("sqlite://data/x.db?mode=rwc").unwrap().to_str(),
            Some("data/x.db")
        );
        assert_eq!(
            sqlite_path("sqlite:///var/lib/s.db").unwrap().to_str(),
            Some("/var/lib/s.db")
        );
        assert!(sqlite_path("sqlite::memory:").is_none());
        assert!(sqlite_path("postgres://x/y").is_none());
    }
}
