//! Database connection and migrations. One model code serves `SQLite` (default) and
//! `PostgreSQL` through sqlx's `Any` driver; each dialect has its own migrations.

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

/// Opens a pool. `SQLite` files (and their folder) are created when absent; sqlx's
/// `SQLite` defaults already give WAL, `synchronous=FULL` and foreign keys.
pub async fn connect(url: &str) -> Result<(AnyPool, Dialect)> {
    install_default_drivers();
    let dialect = Dialect::of(url).ok_or_else(|| {
        crate::Error::invalid(format!(
            "database url must start with sqlite: or postgres:// (got {url:?})"
        ))
    })?;
    let url = if dialect == Dialect::Sqlite {
        prepare_sqlite_url(url)?
    } else {
        url.to_owned()
    };
    let pool = AnyPoolOptions::new()
        .max_connections(if dialect == Dialect::Sqlite { 4 } else { 10 })
        .connect(&url)
        .await?;
    Ok((pool, dialect))
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

/// Applies the dialect's migrations.
pub async fn migrate(pool: &AnyPool, dialect: Dialect) -> Result<()> {
    match dialect {
        Dialect::Sqlite => sqlx::migrate!("../migrations/sqlite").run(pool).await?,
        Dialect::Postgres => sqlx::migrate!("../migrations/postgres").run(pool).await?,
    }
    Ok(())
}
