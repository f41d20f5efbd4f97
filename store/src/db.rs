//! Database connection and migrations. One model code serves `SQLite` (default) and
//! `PostgreSQL` through sqlx's `Any` driver; each dialect has its own migrations.
//!
//! Crypto-shredding at the database level: on `SQLite` every pooled connection
//! runs with `secure_delete`, so a deleted or overwritten row (a destroyed wrapped
//! data key) is zeroed in its page instead of lingering in free space, and after
//! a shred a write-ahead log (in WAL mode), which still holds the old page
//! images, is checkpointed and truncated. `PostgreSQL` keeps dead tuples until `VACUUM` and
//! in its WAL archive: see docs/security.md for what makes shredding final there.

use sqlx::AnyPool;
use sqlx::any::{AnyPoolOptions, install_default_drivers};

use crate::Result;

/// Which SQL dialect a URL speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    pub fn of(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

/// Opens a pool. `SQLite` files (and their folder) are created when absent, and
/// run in WAL mode with `synchronous = FULL`: a commit writes the log and fsyncs
/// it once (a rollback journal needs several fsyncs per commit), and FULL — not
/// NORMAL, which skips that fsync — keeps the promise that a message is on disk
/// before the gateway answers 250: a commit that returned survives a power cut.
/// Readers no longer wait for writers. Shredding handles the log (below).
pub async fn connect(url: &str) -> Result<(AnyPool, Dialect)> {
    let dialect = dialect_of(url)?;
    let max = if dialect == Dialect::Sqlite { 4 } else { 10 };
    Ok((open_pool(url, dialect, max, Synchronous::Full).await?, dialect))
}

/// The pool for writes that need not survive a power cut on their own: claims,
/// their renewals, a sealing attempt's count (`write_tx.rs`). On `SQLite`, one
/// connection with `synchronous = NORMAL`: its commits are in the log at once
/// (they survive the process being killed) but are fsynced only with the next
/// ordinary commit or checkpoint, so a power cut may take back the last few,
/// and the work they claimed is simply claimed again. The log is one sequence,
/// so an ordinary commit after them makes them durable too, and none can be
/// lost while a later one stays. On `PostgreSQL` (and an in-memory `SQLite`),
/// the ordinary pool.
pub(crate) async fn connect_lazy(url: &str, pool: &AnyPool, dialect: Dialect) -> Result<AnyPool> {
    match dialect {
        // A second pool on `:memory:` would be another, empty, database.
        Dialect::Sqlite if !url.contains(":memory:") => open_pool(url, dialect, 1, Synchronous::Normal).await,
        Dialect::Sqlite | Dialect::Postgres => Ok(pool.clone()),
    }
}

/// A claim's `LIMIT`, written into its SQL as a number rather than bound. A
/// bound `LIMIT $n` makes `SQLite` plan the statement for the bound value, so
/// every execution with a new binding prepared it again (issue 14's profile:
/// 3 % of the server's time). The few limits a worker asks for each keep a
/// prepared statement of their own.
pub(crate) fn literal_limit(limit: i64) -> i64 {
    limit.max(0)
}

/// `SQLite`'s `synchronous` for a pool's connections.
#[derive(Clone, Copy)]
enum Synchronous {
    Full,
    Normal,
}

fn dialect_of(url: &str) -> Result<Dialect> {
    Dialect::of(url).ok_or_else(|| {
        crate::Error::invalid(format!(
            "database url must start with sqlite: or postgres:// (got {url:?})"
        ))
    })
}

async fn open_pool(url: &str, dialect: Dialect, max: u32, synchronous: Synchronous) -> Result<AnyPool> {
    install_default_drivers();
    let url = if dialect == Dialect::Sqlite {
        prepare_sqlite_url(url)?
    } else {
        url.to_owned()
    };
    let pool = AnyPoolOptions::new()
        .max_connections(max)
        // sqlx pings a pooled connection before handing it out. An `SQLite`
        // connection is a file this process holds open, not a peer that can
        // hang up: its ping only proves that its worker thread still answers,
        // at the cost of one more hand-off to that thread per statement
        // (issue 14's profile: futex waits were the largest cost). A
        // `PostgreSQL` connection may have been cut by the server: keep it.
        .test_before_acquire(dialect == Dialect::Postgres)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if dialect == Dialect::Sqlite {
                    sqlx::query("PRAGMA secure_delete = ON").execute(&mut *conn).await?;
                    // The journal mode is kept in the file; `synchronous` is per
                    // connection. See `connect`'s comment before changing either.
                    sqlx::query("PRAGMA journal_mode = WAL").execute(&mut *conn).await?;
                    let pragma = match synchronous {
                        Synchronous::Full => "PRAGMA synchronous = FULL",
                        Synchronous::Normal => "PRAGMA synchronous = NORMAL",
                    };
                    sqlx::query(pragma).execute(&mut *conn).await?;
                }
                Ok(())
            })
        })
        .connect(&url)
        .await?;
    Ok(pool)
}

impl crate::Store {
    /// Makes destroyed rows unrecoverable from the database files. On `SQLite`,
    /// `secure_delete` has zeroed them in the pages, but the write-ahead log still
    /// holds older images of those pages: checkpoint them into the database and
    /// truncate the log to nothing. If a reader holds an old snapshot the log
    /// cannot be reset now; the next shred (or the next clean shutdown) finishes
    /// the job, and that is logged. On `PostgreSQL` there is nothing to do here.
    pub(crate) async fn wipe_freed_pages(&self) {
        if self.dialect != Dialect::Sqlite {
            return;
        }
        let busy = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&self.db)
            .await
            .and_then(|row| sqlx::Row::try_get::<i64, _>(&row, 0));
        match busy {
            Ok(0) => {}
            Ok(_) => tracing::warn!(
                "the write-ahead log could not be truncated after a shred (a reader is busy); the next shred or a clean shutdown will"
            ),
            Err(error) => tracing::warn!(%error, "cannot checkpoint the write-ahead log after a shred"),
        }
    }
}

/// Creates the database file's folder and asks sqlx to create the file.
fn prepare_sqlite_url(url: &str) -> Result<String> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path != ":memory:"
        && let Some(parent) = std::path::Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)?;
    }
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    if !params.iter().any(|p| p.starts_with("mode=")) {
        params.push("mode=rwc");
    }
    Ok(format!("sqlite://{path}?{}", params.join("&")))
}

/// The dialect's migrations, as built into this binary.
fn migrator(dialect: Dialect) -> sqlx::migrate::Migrator {
    match dialect {
        Dialect::Sqlite => sqlx::migrate!("../migrations/sqlite"),
        Dialect::Postgres => sqlx::migrate!("../migrations/postgres"),
    }
}

/// Applies the dialect's migrations.
pub async fn migrate(pool: &AnyPool, dialect: Dialect) -> Result<()> {
    migrator(dialect).run(pool).await?;
    Ok(())
}

/// The newest migration this binary knows.
pub(crate) fn latest_migration(dialect: Dialect) -> i64 {
    migrator(dialect).iter().map(|m| m.version).max().unwrap_or(0)
}
